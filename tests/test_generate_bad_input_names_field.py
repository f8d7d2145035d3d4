"""Bad options stop `generate` with one clear line naming the field."""
from __future__ import annotations

import pytest

from annotation.generate import main as generate_main


def test_generate_names_unknown_style_and_bad_generator(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "p", "source": "gsm8k", "problem_id": "g", "kind": "single_turn", "problem": "1+1?"}\n')
    with pytest.raises(SystemExit, match=r"field styles: unknown \['shouting'\]"):
        generate_main(["--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl"), "--styles", "shouting",
                       "--generators", "human:teacher"])
    with pytest.raises(SystemExit, match=r"flag --generators: .*generator 'gpt4': expected local:<model>"):
        generate_main(["--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl"), "--generators", "gpt4"])
