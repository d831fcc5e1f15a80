"""BatchNorm as published encoders use it at inference: the stored running statistics, always.

The IDInvert, pSp and e4e encoders were trained with batch statistics but are applied with their
running averages; this layer uses those whatever mode the module is in, so an encoder serving as the
regulariser E(G(w)) inside an optimisation cannot drift into batch statistics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InferenceBatchNorm(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps)
