"""The caffemodels FCN consumes: manifest (what, from where, checksums) and download.

    weights.manifest   load/validate weights/manifest.json; weights_dir, path_of, require
    weights.download   python -m weights.download NAME... | --all | --list
"""
