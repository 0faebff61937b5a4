"""Ad-hoc runs (``bench run --method M --dataset D`` without a suite) and suite files or ad-hoc
names wherever the commands that read results take ``--suite``."""

from __future__ import annotations

import yaml

from bench.records.store import Store
from bench.run.adhoc import adhoc_name, stored_adhoc
from tests.conftest import invoke

SELECTION = ("--method", "ocsvm", "--method", "kde", "--dataset", "digits")


def errors(res) -> list[str]:
    return [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]


def test_the_name_is_a_stable_hash_of_the_sorted_methods_and_datasets():
    name = adhoc_name(["ocsvm", "kde"], ["digits"])
    assert name == adhoc_name(["kde", "ocsvm", "kde"], ["digits"])
    assert name.startswith("adhoc-") and len(name) == len("adhoc-") + 8
    assert name != adhoc_name(["ocsvm"], ["digits"]) != adhoc_name(["ocsvm", "kde"], ["textures"])


def test_an_ad_hoc_run_is_a_suite_that_tables_status_and_list_find(cli, results, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    name = adhoc_name(["ocsvm", "kde"], ["digits"])
    res = invoke(cli, results, "run", *SELECTION, "--task", "3")
    assert res.exit_code == 0, res.output
    assert f"ad-hoc suite {name} (kde, ocsvm on digits)" in res.output
    assert f"bench table --suite {name}" in res.output
    recs = Store(results).records(name)
    assert len(recs) == 2 and all(r.ok and r.job.seed == 0 for r in recs)
    for suite in (name, "adhoc"):
        table = invoke(cli, results, "table", "--suite", suite)
        assert table.exit_code == 0 and "| kde" in table.output and "ocsvm" in table.output
    assert f"--suite adhoc: {name}" in invoke(cli, results, "table", "--suite", "adhoc").output
    status = invoke(cli, results, "status", "--suite", "adhoc")
    assert status.exit_code == 0 and name in status.output
    assert [ln.split("│")[1:7] for ln in status.output.splitlines() if name in ln and "│" in ln
            ] == [[f" {name} ", "    2 ", "    2 ", "     0 ", "      0 ", "       0 "]]
    everything = invoke(cli, results, "status")
    assert everything.exit_code == 0 and name in everything.output and "demo" in everything.output
    listed = invoke(cli, results, "list", "suites")
    assert name in listed.output and "kde, ocsvm" in listed.output
    again = invoke(cli, results, "run", "--method", "kde", "--method", "ocsvm", "--dataset",
                   "digits", "--task", "3")  # the same selection: the same suite, resumed
    assert again.exit_code == 0 and "0 run now, 2 already done" in again.output


def test_the_definition_grows_with_each_run_and_runs_again_by_name(cli, results):
    name = adhoc_name(["ocsvm", "kde"], ["digits"])
    assert invoke(cli, results, "run", *SELECTION, "--task", "3").exit_code == 0
    res = invoke(cli, results, "run", *SELECTION, "--task", "5", "--seeds", "1",
                 "--set", "nu=0.3")
    assert res.exit_code == 0 and "2 run now" in res.output
    [path] = stored_adhoc(results)
    assert path == results / "runs" / name / "suite.yaml"
    assert yaml.safe_load(path.read_text()) == {
        "name": name, "description": "ad-hoc: kde, ocsvm on digits (bench run --method ... "
                                     "--dataset ...)",
        "seeds": [0, 1], "datasets": {"digits": ["3", "5"]},
        "methods": {"kde": [{}], "ocsvm": [{}, {"nu": 0.3}]}}
    # the grid it implies: 2 tasks x 2 seeds x (kde, ocsvm, ocsvm[nu=0.3]); 4 done
    dry = invoke(cli, results, "run", "--suite", name, "--all", "--dry-run")
    assert dry.exit_code == 0 and f"12 job(s) in suite {name}" in dry.output
    status = invoke(cli, results, "status", "--suite", name)
    assert status.exit_code == 0 and "12" in status.output
    # without --task: every task of the dataset
    invoke(cli, results, "run", "--method", "kde", "--method", "ocsvm", "--dataset", "digits",
           "--dry-run")
    assert yaml.safe_load(path.read_text())["datasets"] == {"digits": ["3", "5"]}  # dry: kept


def test_suite_adhoc_and_what_stays_as_before(cli, results):
    explicit = invoke(cli, results, "run", "--suite", "adhoc", *SELECTION, "--task", "3",
                      "--dry-run")
    name = adhoc_name(["ocsvm", "kde"], ["digits"])
    assert explicit.exit_code == 0 and f"2 job(s) in suite {name}" in explicit.output
    assert not (results / "runs").exists()  # a dry run writes nothing
    res = invoke(cli, results, "run", "--suite", "adhoc", "--all")
    assert res.exit_code == 2 and "needs --method and --dataset" in errors(res)[0]
    # --all, or a method without a dataset: the paper suite, as before
    for args in (("--method", "ocsvm"), ("--all", "--method", "ocsvm", "--dataset", "mnist")):
        paper = invoke(cli, results, "run", *args, "--dry-run")
        assert paper.exit_code == 0 and "job(s) in suite paper" in paper.output, paper.output
    unknown = invoke(cli, results, "run", "--method", "nope", "--dataset", "digits")
    assert unknown.exit_code == 2 and "unknown method 'nope'; choose from" in errors(unknown)[0]
    assert not (results / "runs").exists()


def test_no_ad_hoc_run_yet_is_one_line(cli, results):
    for args in (("table", "--suite", "adhoc"), ("status", "--suite", "adhoc"),
                 ("check", "--suite", "adhoc")):
        res = invoke(cli, results, *args)
        assert res.exit_code == 2 and len(errors(res)) == 1
        assert "no ad-hoc suite" in errors(res)[0] and "bench run --method" in errors(res)[0]


def test_a_suite_file_works_wherever_run_takes_it(cli, results, tmp_path):
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\ndatasets: {digits: ['3']}\nmethods: {kde: {}, ocsvm: {}}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    table = invoke(cli, results, "table", "--suite", str(suite))
    assert table.exit_code == 0 and "suite mine" in table.output
    status = invoke(cli, results, "status", "--suite", str(suite))
    assert status.exit_code == 0 and "mine" in status.output
    base = tmp_path / "base.csv"
    update = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(base))
    assert update.exit_code == 0, update.output
    check = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert check.exit_code == 0 and "bench check mine: PASS" in check.output
    report = invoke(cli, results, "report", "--suite", str(suite), "-o",
                    str(tmp_path / "r.html"))
    assert report.exit_code == 0 and (tmp_path / "r.html").is_file()
    plot = invoke(cli, results, "plot", "bars", "--suite", str(suite))
    assert plot.exit_code == 0 and (results / "figures" / "mine").is_dir()
    missing = invoke(cli, results, "table", "--suite", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "suite file not found" in errors(missing)[0]
