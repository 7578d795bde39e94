"""Robustness stage: adversarial attacks (one base class, one module per attack), EOT,
curves and the evaluation protocol for randomized networks. No Lava needed here."""
