"""Stage `invert`: in-domain GAN inversion (Zhu, Shen, Zhao, Zhou, ECCV 2020) into StyleGAN2's W+."""
