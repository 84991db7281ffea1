"""Readers of Kubernetes bodies that every kind uses: the `Body` alias and its accessors,
timestamps, Go durations, kstatus conditions, a pod's STATUS word, and the slim projections
of watched objects. Pure: plain dicts and the models in, values out."""
