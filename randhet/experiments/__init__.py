"""Experiments built from the stages: ``randhet run`` (train, export, deploy, attack),
``randhet compare`` (sigma = 0 vs RandHet over seeds) and ``randhet flex-compare``
(BioFlexNet's six variants)."""
