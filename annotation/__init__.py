"""Stage 1, annotation: prompt sets with student profiles (`prompts`), candidate tutor responses (`generate`),
LLM-judge labeling runs (`label`), human labels (`human_import`, `labelstudio`, the `serve` web page) and agreement
statistics (`agreement`). Shared building blocks (schema, rubrics, judges, models, configs) live in `core`."""
