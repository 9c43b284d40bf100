"""Independent oracles for the contract's gradients, and the one comparison rule.

Only the ``torch_*`` adapters import torch; everything else here is NumPy.
"""
