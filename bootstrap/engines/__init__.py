"""Where the cluster comes from: k3d (default) or an existing cluster (kubeconfig/context).

base.py is the seam both engines implement; `choose.engine_for(settings, state)` picks
one. Stages call its methods and never branch on the engine's type.
"""
