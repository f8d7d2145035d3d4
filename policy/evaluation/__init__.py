"""Evaluation of policies: `evaluate` (base vs tuned on held-out prompts), `independent` (scorers the policy never
trained on, their trust and the reward-hacking gap), `tutorbench` (MathTutorBench-style tasks, GSM8K) and
`report` (Markdown and plots); the bootstrap intervals and win rates are `core.stats` (best-of-n's report uses them too)."""
