"""Building blocks that every stage uses; imports no stage.

- `config`: pydantic configs, the CLI generated from them, YAML overrides; `cli`: the `python -m <stage>` dispatcher.
- `schema`: the interchange format (PromptItem, LabeledItem), JSONL I/O with file:line errors, atomic writes.
- `rubric`: rubrics (dimensions, levels, weights); `sampling`: inverse-CDF sampling helpers.
- `models`: the model registry (embedded offline models, hub ids, local paths) and loading.
- `llm_client`: the OpenAI-compatible chat client; `judges/`: LLM judges (local model, endpoint) in a registry.
- `sources`: readers for the shipped public datasets (GSM8K, MathDial, MathTutorBench, MRBench).
- `stats`: bootstrap intervals over prompts, Holm correction, exact rate and win-rate intervals (eval and training reports).
"""
