"""The whole run: which command each stage runs and which files connect them; it runs stage CLIs, never their code."""
