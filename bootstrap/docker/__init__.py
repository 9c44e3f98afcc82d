"""Docker on this machine (not an engine: the k3d engine, preflight and `platform image`
use it).

    host.py    the one docker-py adapter: info, local images, build, save/load, prune
    build.py   `platform image build`: the component image from wheels of this checkout
    bundle.py  the offline bundle of the pinned images (`platform images save`,
               `platform up --images`)

The pinned image references are in bootstrap/images.py, their versions in bootstrap/pins.py.
"""
