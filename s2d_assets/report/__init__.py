"""What reads results rather than makes them: the results document (``s2d report``) and its blocks,
the evaluation table (``s2d results``), the Coconut results, pool export and the plots. It sits
above ``distill/`` and ``coconut/`` (nothing there imports it) and imports no Dagster."""
