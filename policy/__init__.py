"""Stage 3, the policy. It reads the reward-model folder written by stage 2 through `core`, never hpc_rm's internals.

Four rooms, so that each folder says what it holds and imports point one way:
- `train/`: the training methods and what they share (the run config, the reward functions). Training is kept in
  its own sub-package rather than at policy's top because it holds several methods side by side; it never imports
  `evaluation/`, `classroom/` or `experiments/` (tests/test_layering_stages_import_only_core.py).
- `classroom/`: GRPO over whole dialogues with a simulated student (rollout, student, judges, rewards, its run and
  its own evaluation). It builds on `train/`.
- `evaluation/`: base vs tuned policies on held-out prompts (scorers, statistics, MathTutorBench-style tasks,
  reports). It may read a training run's folder layout from `train/`.
- `experiments/`: what trains several runs and evaluates them (the reward-weight sweep).
The modules at policy's top (`prompts`, `rollout`) are the building blocks every room uses: prompt rows and answer
parsing, sampling and log-probabilities."""
