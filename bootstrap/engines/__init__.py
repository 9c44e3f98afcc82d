"""Where the cluster comes from: k3d (default) or an existing cluster (kubeconfig/context).

`engine_for(settings, state)` picks one; stages call its methods and never branch on the
engine's type.
"""
