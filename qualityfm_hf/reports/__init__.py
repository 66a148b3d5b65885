"""Stage 5: what leaves the pipeline. `cards` renders the Hub model cards of pretrained encoders and fine-tuned heads
(from `model_cards/`), `hub` pushes a saved folder to the Hub (`qualityfm push`), and `figures` draws the figures and
tables of the quickstart report."""
