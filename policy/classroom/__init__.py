"""The classroom (after PedagogicalRL): GRPO over whole dialogues with a simulated student. `dialogue` runs the
conversations (TRL's rollout_func, env_mask), `student` the simulated student, `judges` the leak/pedagogy panel,
`rewards` the solve-rate and judge rewards, `config` its options, `run` the training and `eval` base vs tuned."""
