"""randhet's Lava Processes and their models.

Lava imports every module in the folder of a Process to find its models, so this package holds
nothing else.
"""
