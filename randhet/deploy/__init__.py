"""Deploy stage: run an exported network as Lava processes (the only stage that imports Lava)."""
