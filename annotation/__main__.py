from core.cli import dispatch

COMMANDS = {
    "data": ("annotation.prompts", "build prompt sets with student profiles and rm/rl/eval splits"),
    "generate": ("annotation.generate", "generate candidate tutor responses for prompts"),
    "label": ("annotation.label", "label responses on a rubric with LLM judges (resumable)"),
    "import": ("annotation.human_import", "import human labels from CSV/JSONL/Label Studio export"),
    "export-labelstudio": ("annotation.labelstudio", "export tasks and a labeling config for Label Studio"),
    "agreement": ("annotation.agreement", "agreement report: human-human, human-LLM, LLM self-consistency"),
    "serve": ("annotation.serve", "web page for human annotators"),
    "annotators": ("annotation.serve.admin", "create annotators and their access tokens for `serve`"),
}


def main(argv=None):
    dispatch("annotation", COMMANDS, argv)


if __name__ == "__main__":
    main()
