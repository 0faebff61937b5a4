import json
import subprocess
import sys

import pytest

from bench.core.errors import MissingDependency, UsageError
from bench.run.jobs import Job, expand
from bench.run.select import select_jobs
from bench.run.suites import load_suite, parse_suite

SUITE = {
    "name": "t",
    "seeds": [0, 1],
    "datasets": {"digits": ["1", "2"], "textures": "all"},
    "methods": {"ocsvm": [{}, {"nu": 0.5}], "kde": {}},
}
TASKS = {"digits": [str(i) for i in range(10)], "textures": ["brick", "grass", "gravel"]}


def test_job_id_is_stable_and_order_independent():
    a = Job.make("s", "m", "d", "1", 0, {"b": [1, 2], "a": 1})
    b = Job.make("s", "m", "d", "1", 0, {"a": 1, "b": (1, 2)})
    assert a == b and a.id == b.id and len(a.id) == 16
    assert Job.from_key(json.loads(json.dumps(a.key()))) == a
    assert Job.make("s", "m", "d", "1", 1).id != Job.make("s", "m", "d", "1", 0).id


def test_job_id_identical_across_processes():
    code = ("from bench.run.jobs import Job; "
            "print(Job.make('demo','mkd','digits','3',0,{'epochs':5,'layers':['pool5']}).id)")
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() for _ in range(2)}
    here = Job.make("demo", "mkd", "digits", "3", 0, {"epochs": 5, "layers": ["pool5"]}).id
    assert ids == {here}


def test_expand_is_sorted_complete_and_filterable():
    suite = parse_suite(SUITE, "test")
    jobs = expand(suite, TASKS)
    # (2 digits + 3 textures) tasks x (2 ocsvm variants + 1 kde) x 2 seeds
    assert len(jobs) == 5 * 3 * 2
    assert jobs == sorted(jobs, key=lambda j: (j.dataset, j.task, j.method, j.overrides, j.seed))
    assert expand(suite, TASKS) == jobs  # pure
    only = expand(suite, TASKS, methods=["kde"], datasets=["digits"], seeds=[1])
    assert [(j.method, j.task, j.seed) for j in only] == [("kde", "1", 1), ("kde", "2", 1)]
    extra = expand(suite, TASKS, methods=["kde"], extra={"kde": {"bandwidth": "silverman"}})
    assert all(j.overrides_dict == {"bandwidth": "silverman"} for j in extra)


def test_shipped_suites_load_and_validate():
    for name in ("demo", "ci"):
        suite = load_suite(name)
        _, jobs = select_jobs(name, check_data=False)
        assert jobs and suite.name == name


def test_select_rejects_bad_names_and_overrides():
    with pytest.raises(UsageError, match="unknown suite 'nope'; choose from: .*demo"):
        select_jobs("nope")
    with pytest.raises(UsageError, match="unknown method 'foo'.*choose from"):
        select_jobs("demo", methods=["foo"])
    with pytest.raises(UsageError, match="unknown task '11'"):
        select_jobs("demo", datasets=["digits"], tasks=["11"])
    with pytest.raises(UsageError, match="no selected method has this field; valid fields"):
        select_jobs("demo", overrides={"epochz": 3})
    with pytest.raises(UsageError, match="nu: expected a number"):
        select_jobs("demo", methods=["ocsvm"], overrides={"nu": "lots"})


def test_missing_weights_are_caught_before_a_suite_runs():
    with pytest.raises(UsageError, match="mkd on digits: vgg16 needs weights.*expert_weights"):
        select_jobs("demo", methods=["mkd"], overrides={"expert_weights": None})
    with pytest.raises(UsageError, match="backbone_weights=imagenet"):
        select_jobs("demo", methods=["ocsvm"], overrides={"features": "backbone"})


def test_every_shipped_suite_chooses_weights_wherever_they_are_needed():
    from bench.methods import METHODS
    from bench.run.suites import suite_names
    from tests.test_benchmark_suite import registered_part

    for name in suite_names():
        suite = load_suite(name)
        # methods of a plugin not installed here (the benchmark suite's anomalib.*) are left out
        missing = [m for m in suite.method_names() if m not in METHODS]
        assert all(m.startswith("anomalib.") for m in missing), missing
        try:
            select_jobs(registered_part(suite), check_data=False)  # raises if weights are missing
        except MissingDependency as exc:  # a suite on an extra not installed here
            assert "efficientnet" in str(exc), exc
