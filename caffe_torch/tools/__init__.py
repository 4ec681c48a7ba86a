"""Command-line tools: `python -m caffe_torch.tools.<name> --help`."""
