"""The ABP default head: a ridge regression on the frozen encoder's embeddings (`train.fit_ridge_head`).

The head must compute exactly what the fitted sklearn pipeline predicts (scaler and ridge folded into one linear
layer, in mmHg), leave the encoder as loaded, and be what `qualityfm finetune --task abp` does by default."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch
from conftest import REPO_ROOT

from qualityfm_hf import QualityFMModel
from qualityfm_hf.cli.main import main
from qualityfm_hf.finetuning.linear import embed_windows, fit_ridge
from qualityfm_hf.finetuning.task_data import build_task_table, collate, extract_features
from qualityfm_hf.finetuning.train import (
    fit_ridge_head,
    load_feature_extractor,
    load_model,
    task_config_overrides,
)
from qualityfm_hf.modeling.heads_qualityfm import QualityFMForABPRegression

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
FAST = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--n-bootstrap", "20",
        "--no-progress"]


def abp_windows(backbone):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features, _ = extract_features(build_task_table("abp", BUNDLED_VT), load_feature_extractor(str(backbone)))
    return features


def test_ridge_head_computes_the_fitted_pipelines_predictions(backbone):
    rows = abp_windows(backbone)
    assert len({f["record"] for f in rows}) >= 4
    net = load_model("abp", str(backbone), **task_config_overrides("abp", rows, None)).eval()
    alpha = fit_ridge_head(net, rows, seed=0)
    embeddings = embed_windows(net.qualityfm, rows, progress=False).astype(np.float64)
    targets = np.stack([np.asarray(f["labels"], dtype=np.float64) for f in rows])
    pipeline, expected_alpha = fit_ridge(embeddings, targets, np.array([f["record"] for f in rows]), 0)
    batch = collate([{k: f[k] for k in ("input_values", "attention_mask", "channel_mask")} for f in rows])
    with torch.no_grad():
        logits = net(**batch).logits.double().numpy()
    assert alpha == expected_alpha
    np.testing.assert_allclose(logits, pipeline.predict(embeddings), atol=1e-2)  # mmHg, float32 head
    # Not a constant: the head reads the embedding (the training mean alone would make every row equal).
    assert np.ptp(logits[:, 0]) > 0


def test_finetune_abp_fits_the_ridge_head_by_default_and_trainer_on_request(backbone, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["finetune", "--task", "abp", "--data", str(BUNDLED_VT), "--model", str(backbone), "--output",
                     str(tmp_path / "ridge"), "--cv", "0", *FAST]) == 0
        assert main(["finetune", "--task", "abp", "--data", str(BUNDLED_VT), "--model", str(backbone), "--output",
                     str(tmp_path / "trainer"), "--cv", "0", "--head-fit", "trainer", *FAST]) == 0
    ridge = json.loads((tmp_path / "ridge" / "metrics.json").read_text())["train"]
    trainer = json.loads((tmp_path / "trainer" / "metrics.json").read_text())["train"]
    assert ridge["head_fit"] == "ridge" and ridge["global_step"] == 0 and ridge["ridge_alpha"] > 0
    assert trainer["head_fit"] == "trainer" and trainer["global_step"] == 2
    start = QualityFMModel.from_pretrained(backbone).state_dict()
    saved = QualityFMForABPRegression.from_pretrained(tmp_path / "ridge").state_dict()
    assert all(torch.equal(saved[f"qualityfm.{k}"], v) for k, v in start.items())  # the encoder is as loaded
    capsys.readouterr()
    assert main(["finetune", "--task", "af", "--data", str(BUNDLED_VT), "--model", str(backbone), "--output",
                 str(tmp_path / "af"), "--head-fit", "ridge", *FAST]) == 1
    err = capsys.readouterr().err
    assert "head_fit='ridge' fits a regression head" in err and "Traceback" not in err
