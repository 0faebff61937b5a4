"""Where jobs run: ``local`` (this process, or loky worker processes) and ``dask`` (a cluster).

Each backend takes the jobs still to run and calls :func:`bench.run.dispatch.dispatch` once per
job in the process the job lands in, handing every :class:`~bench.run.dispatch.Outcome` to the
runner's ``collect`` as it comes.
"""

#: the backends' names (``bench run --backend``)
BACKENDS = ("local", "dask")
