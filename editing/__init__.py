"""Stage `edit`: move inverted W+ codes along SeFa directions, render, grid, animate, paste back."""
