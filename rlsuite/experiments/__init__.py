"""Many runs: side-by-side comparisons, seed x grid sweeps, benchmark grids, reports, curves and time profiles."""
