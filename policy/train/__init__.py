"""Training a policy on the reward model: GRPO (`grpo`), its run config (`config`) and reward functions (`rewards`).
Imports only `core` and policy's shared top-level modules (`prompts`, `rollout`), never evaluation or the classroom."""
