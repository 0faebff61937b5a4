"""bench: a reproduction and benchmarking harness for image anomaly detection.

Built around Multiresolution Knowledge Distillation (MKD; Salehi et al., CVPR 2021).
The pipeline is suite -> jobs -> runner -> store -> aggregate -> render; see README.md.
"""

__version__ = "0.1.0"
