"""The fleet planner's integer model, one module per job.

* ``model``: workloads, GPU pools and candidate replicas as integers; the named rows both encodings read;
  the dominated-candidate test.
* ``milp``: those rows in HiGHS (PuLP's CBC when highspy is missing); ``cpsat``: the same rows in CP-SAT.
* ``workload``: one workload's least-cost replicas by an exact branch and bound (the decomposition's inner problem).

Nothing here imports ``infecon.solver`` (``tests/test_layering.py``) or the physics (``tests/test_one_physics.py``).
"""
