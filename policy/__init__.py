"""Stage 3, the policy: GRPO on the reward model's weighted heads (`grpo`, `rewards`), evaluation and weight sweeps.
It reads the reward-model folder written by stage 2 through `core.reward_model`, never hpc_rm's internals."""
