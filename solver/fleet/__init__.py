"""The fleet planner, one module per job: which deployments on which GPU types serve every workload at least cost.

* ``candidates``: candidate replicas of a workload on a GPU type, from its exact frontier under its SLOs.
* ``plan``: the loop (candidates, integer model, solve, plan table, naive plan, diagnosis, TPOT-scale frontier).
* ``solve``: the exact decomposition (dominance, workloads apart, Pareto patterns); ``scales``: the frontier's walk.
* ``report``: table, files and plot; ``command``: the ``infecon fleet`` parser.

The integer model itself is ``infecon.formulations.fleet``; the scenario reader ``infecon.instances.fleet_scenario``.
"""
