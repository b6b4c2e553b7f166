"""HetComp's distillation losses as Keras losses in TF-Ranking's (labels, logits) API.

Every loss here is a Plackett-Luce likelihood "with a rest": items with a positive label form a permutation
(descending label order), items labelled 0 form the rest R whose whole mass sits in every denominator, and
items labelled < 0 are ignored (TF-Ranking's mask). For a permutation π of length L:

    L(π) = −Σ_k [ s_{π_k} − log( Σ_{l≥k} e^{s_{π_l}} + Σ_{j∈R} e^{s_j} ) ]

The set-wise ("overall") loss is the same with every positive item in a list of its own:
−Σ_t [ s_t − log( e^{s_t} + Σ_{j∈R} e^{s_j} ) ].

One module per part: the label matrices and item pairs the losses build on (`labels.py`), the listwise
Plackett-Luce losses with a rest (`listwise.py`), the losses on the ensemble's targets, HetComp's and RRD's
(`hetcomp.py`), and DCD's (`dcd.py`).
"""
