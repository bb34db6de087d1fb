"""Reading the original Node gateway's databases and writing their rows into ours."""
