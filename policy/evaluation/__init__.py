"""Evaluation of policies: `evaluate` (base vs tuned on held-out prompts), `independent` (scorers the policy never
trained on, their trust and the reward-hacking gap), `tutorbench` (MathTutorBench-style tasks, GSM8K), `stats`
(bootstrap intervals, win rates) and `report` (Markdown and plots)."""
