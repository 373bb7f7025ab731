"""Each metric against its reference implementation on the same inputs: the difference.

- Official VQA v2 accuracy against the official evaluation script itself (``--vqa-repo``: a
  checkout of GT-Vision-Lab/VQA; its Python 2 files are loaded with their ``print`` statements
  turned into calls, nothing else changed), per question and overall, on a seeded set of
  questions whose ten human answers and predictions are drawn from confusable variants
  ("2" / "two" / "Two", "yes" / "Yes!" / "yes.", "t-shirt" / "t shirt", ...).
- Caption BLEU-4 and CIDEr-D against pycocoevalcap's ``Bleu(4)`` and ``Cider()`` on a seeded
  corpus of 30 images x 5 references: with Java on the machine pycocoevalcap gets the raw text
  through its own ``PTBTokenizer`` (the official path end to end); without Java, the text
  tokenized by our ``coco_tokenize``.
- WER against jiwer on the same hypothesis / reference pairs.

    python benchmarks/metric_parity.py [--vqa-repo PATH/TO/VQA] [--rules official|2017]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from trimodal.eval.vqa import vqa_accuracy
from trimodal.generation.metrics import tokenize_caption, word_error_rate

VARIANTS = [
    ["2", "two", "Two", "2 ", "two."],
    ["yes", "Yes", "yes!", "Yes.", "yes ", "yeah"],
    ["no", "No", "nope", "no."],
    ["t-shirt", "t shirt", "T-Shirt", "tshirt"],
    ["the kitchen", "kitchen", "Kitchen", "a kitchen"],
    ["1,000", "1000", "one thousand"],
    ["dont know", "don't know", "not sure"],
    ["red", "red and white", "red, white", "red/white"],
    ["2.5", "2.5.", "two and half"],
]


def vqa_set(questions: int, seed: int) -> list[tuple[list[str], str]]:
    """``(ten human answers, prediction)`` per question; a fifth of them unanimous."""
    generator = random.Random(seed)
    out = []
    for _ in range(questions):
        pool = generator.choice(VARIANTS)
        humans = [generator.choice(pool) for _ in range(10)]
        if generator.random() < 0.2:
            humans = [humans[0]] * 10
        out.append((humans, generator.choice(pool)))
    return out


def _load_python2(path: Path, name: str) -> types.ModuleType:
    """Import one of the official Python 2 files: ``print x`` becomes ``print(x)`` and tabs
    become spaces as Python 2 read them (to the next multiple of 8); nothing else changes."""
    source = path.read_text().expandtabs(8)
    source = re.sub(r"^(\s*)print (.+)$", r"\1print(\2)", source, flags=re.M)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def official_vqa_scores(repo: Path, cases: list[tuple[list[str], str]]) -> dict[int, float]:
    """Per question id, the official script's accuracy in [0, 1]."""
    vqa_tools = _load_python2(repo / "PythonHelperTools/vqaTools/vqa.py", "official_vqa")
    vqa_eval = _load_python2(
        repo / "PythonEvaluationTools/vqaEvaluation/vqaEval.py", "official_vqa_eval"
    )
    questions, annotations, results = [], [], []
    for qid, (humans, prediction) in enumerate(cases):
        questions.append({"question_id": qid, "image_id": qid, "question": "q?"})
        answers = [
            {"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
            for i, a in enumerate(humans)
        ]
        annotations.append(
            {
                "question_id": qid,
                "image_id": qid,
                "question_type": "what",
                "answer_type": "other",
                "multiple_choice_answer": humans[0],
                "answers": answers,
            }
        )
        results.append({"question_id": qid, "answer": prediction})
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        info = {"data_type": "mscoco", "data_subtype": "val2014", "info": {}, "license": {}}
        files = {
            "questions": {"questions": questions, "task_type": "OpenEnded"} | info,
            "annotations": {"annotations": annotations} | info,
            "results": results,
        }
        for name, data in files.items():
            paths[name] = Path(folder) / f"{name}.json"
            paths[name].write_text(json.dumps(data))
        dataset = vqa_tools.VQA(str(paths["annotations"]), str(paths["questions"]))
        predictions = dataset.loadRes(str(paths["results"]), str(paths["questions"]))
        evaluator = vqa_eval.VQAEval(dataset, predictions, n=12)
        evaluator.evaluate()
    return {int(q): float(v) / 100 for q, v in evaluator.evalQA.items()}


def vqa_rows(repo: Path | None, rules: str) -> list[list[Any]]:
    cases = vqa_set(1000, seed=0)
    ours = [vqa_accuracy(prediction, humans, rules) for humans, prediction in cases]  # type: ignore[arg-type]
    if repo is None:
        print("official VQA: skipped (pass --vqa-repo, a checkout of GT-Vision-Lab/VQA)")
        return []
    theirs = official_vqa_scores(repo, cases)
    worst = max(abs(ours[q] - theirs[q]) for q in range(len(cases)))
    overall_ours, overall_theirs = sum(ours) / len(ours), sum(theirs.values()) / len(theirs)
    name = f"VQA accuracy ({rules}), 1000 questions"
    return [
        [f"{name}: overall", overall_ours, overall_theirs, abs(overall_ours - overall_theirs)],
        [f"{name}: worst question", "", "", worst],
    ]


def wer_rows() -> list[list[Any]]:
    import jiwer

    generator = random.Random(1)
    words = [
        "a",
        "the",
        "red",
        "blue",
        "circle",
        "square",
        "left",
        "of",
        "right",
        "above",
        "below",
        "small",
        "large",
        "two",
    ]
    references, hypotheses = [], []
    for _ in range(200):
        reference = [generator.choice(words) for _ in range(generator.randint(3, 12))]
        hypothesis = [w for w in reference if generator.random() > 0.1]
        hypothesis = [
            generator.choice(words) if generator.random() < 0.1 else w for w in hypothesis
        ]
        if generator.random() < 0.3:
            hypothesis.insert(generator.randint(0, len(hypothesis)), generator.choice(words))
        references.append(" ".join(reference))
        hypotheses.append(" ".join(hypothesis))
    assert all(tokenize_caption(t) == t.split() for t in references + hypotheses)
    ours = word_error_rate(hypotheses, references)
    theirs = float(jiwer.wer(references, hypotheses))
    return [["WER, 200 pairs", ours, theirs, abs(ours - theirs)]]


SUBJECTS = ["A man", "A woman's", "Two dogs", "The cat", "A 12-year-old boy", "People", "A child"]
VERBS = ["is riding", "isn't riding", "can't see", "is holding", "'s sitting on", "stands by"]
OBJECTS = ["a horse", "a hot-dog", "a 10-speed bike", "pizza (pepperoni)", "the dogs' toys"]
OBJECTS += ["a clock at 3:45", "1,000 birds", "an x-ray", 'a "fancy" cake', "a $5 bill"]
ENDS = [".", "", "!", " ...", ","]


def caption_corpus(images: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """``images`` candidates and 5 references each; each image has its own subject and object,
    so candidates range from a reference's paraphrase to another image's caption."""
    generator = random.Random(seed)

    def sentence(subject: str, thing: str) -> str:
        return f"{subject} {generator.choice(VERBS)} {thing}{generator.choice(ENDS)}"

    candidates, references = [], []
    for _ in range(images):
        subject, thing = generator.choice(SUBJECTS), generator.choice(OBJECTS)
        references.append([sentence(subject, thing) for _ in range(5)])
        if generator.random() < 0.7:
            candidates.append(sentence(subject, thing))
        else:
            candidates.append(sentence(generator.choice(SUBJECTS), generator.choice(OBJECTS)))
    return candidates, references


def caption_rows() -> list[list[Any]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    from trimodal.generation.coco_tokenizer import coco_tokenize
    from trimodal.generation.metrics import bleu, cider_d

    candidates, references = caption_corpus(30, seed=2)
    gts = {i: [{"caption": r} for r in refs] for i, refs in enumerate(references)}
    res = {i: [{"caption": c}] for i, c in enumerate(candidates)}
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenizer = PTBTokenizer()  # the official path: Stanford CoreNLP's Java tokenizer
        tokenized_gts, tokenized_res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
        how = "raw text, pycocoevalcap's own Java PTBTokenizer"
    else:
        tokenized_gts = {
            i: [" ".join(coco_tokenize(r["caption"])) for r in v] for i, v in gts.items()
        }
        tokenized_res = {
            i: [" ".join(coco_tokenize(r["caption"])) for r in v] for i, v in res.items()
        }
        how = "text tokenized by coco_tokenize (no Java here)"
    theirs_bleu = Bleu(4).compute_score(tokenized_gts, tokenized_res, verbose=0)[0][3]
    theirs_cider = float(Cider().compute_score(tokenized_gts, tokenized_res)[0])
    ours_bleu, ours_cider = bleu(candidates, references), cider_d(candidates, references)
    name = f"30 images x 5 references, {how}"
    return [
        [f"BLEU-4, {name}", ours_bleu, theirs_bleu, abs(ours_bleu - theirs_bleu)],
        [f"CIDEr-D, {name}", ours_cider, theirs_cider, abs(ours_cider - theirs_cider)],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vqa-repo", type=Path, default=None)
    parser.add_argument("--rules", default="official", choices=("official", "2017"))
    args = parser.parse_args()
    rows = vqa_rows(args.vqa_repo, args.rules) + caption_rows() + wer_rows()
    print(f"java: {shutil.which('java') or 'absent'}")
    print("| metric | trimodal | reference | abs difference |")
    print("|---|---|---|---|")
    for name, ours, theirs, difference in rows:
        cells = [f"{v:.9f}" if isinstance(v, float) else str(v) for v in (ours, theirs)]
        print(f"| {name} | {cells[0]} | {cells[1]} | {difference:.1e} |")


if __name__ == "__main__":
    main()
