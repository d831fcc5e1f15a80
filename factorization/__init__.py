"""Stage `factorize`: closed-form semantic directions (SeFa, Shen & Zhou, CVPR 2021)."""
