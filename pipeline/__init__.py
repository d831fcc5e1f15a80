"""`sefa-edit run`: the four stages chained over folders, resumable, with an HTML report."""
