"""Training stage: the loop (:mod:`~randhet.train.trainer`), its state, checkpoints and resume
(:mod:`~randhet.train.checkpoint`) and logs (:mod:`~randhet.train.logs`)."""
