"""A method registered from outside the package runs and appears in ``recbench compare``
(issue 13, must-show): a researcher's baseline needs no edit inside recbench."""

from __future__ import annotations

import json
import textwrap

from conftest import assert_user_error

PLUGIN = textwrap.dedent(
    '''
    """A plugin baseline: rank the 20 candidates by item id (smallest first)."""

    import numpy as np

    from recbench import results
    from recbench.batches import pick_examples
    from recbench.data import load_dataset
    from recbench.methods import register_method
    from recbench.metrics import ranking_metrics


    @register_method("smallest_id", family="sequential", summary="the candidate with the smallest id")
    def run(config, progress=True):
        ds = load_dataset(config.dataset)
        examples = pick_examples(ds.examples("test"), config.settings.eval_examples, 0)
        scores = np.array([[-float(c) for c in ex.candidates] for ex in examples])
        target = np.array([ex.target_position for ex in examples])
        metrics = ranking_metrics(scores, target)
        run = {"run_id": f"{config.dataset}-smallest_id", "dataset": config.dataset,
               "method": "smallest_id", "family": "sequential", "model": "rule",
               "seed": config.seed, "profile": config.profile, "hparams": {}, "settings": {}}
        store = results.append_records(
            results.make_records(run, metrics, split="test", mode="ranking"), config.results
        )
        return {"run_id": run["run_id"], "evaluation": {"ranking": metrics},
                "results": str(store)}
    '''
)


def test_a_plugin_method_runs_and_appears_in_compare(cli, tmp_path):
    plugin = tmp_path / "smallest_id.py"
    plugin.write_text(PLUGIN)
    store, out = tmp_path / "results.jsonl", tmp_path / "reports"
    ran = cli("run", "--plugin", str(plugin), "--baseline", "smallest_id", "--dataset", "lastfm",
              "--profile", "smoke", "--set", "eval_examples=50", "--results", str(store))  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "final ranking    hr@1=" in ran.stdout and "(n=50)" in ran.stdout
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert {r["method"] for r in records} == {"smallest_id"}
    hr1 = next(r["value"] for r in records if r["metric"] == "hr@1")
    assert 0.0 <= hr1 <= 1.0

    compared = cli("compare", "--plugin", str(plugin), "--results", str(store), "--out", str(out),
                   "--no-plots")  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-3000:]
    table = (out / "table2_main.md").read_text()
    assert "smallest_id" in table

    # without the plugin the method is unknown: one line naming what exists
    missing = cli("run", "--baseline", "smallest_id", "--profile", "smoke")
    assert_user_error(missing, "unknown baseline 'smallest_id'")
