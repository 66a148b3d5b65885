"""Stage 1 of the path a recording takes: read it and score its quality.

`io` reads WFDB and VitalDB files into a `Recording` and finds the PPG / ECG / ABP channels by name; `segmenting`
resamples a recording to the model's rate and cuts it into scored 30-s windows (the pair builder's input);
`record_quality` scores every window of one record for `qualityfm quality`. The scores themselves come from
`qualityfm_hf.quality`, which works on arrays and knows nothing of files.
"""
