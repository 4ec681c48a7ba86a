"""Every model of the paper as Caffe prototxt, generated from one builder per family.

`python -m nets.generate` (`make nets`) writes nets/<model>/{train,val,deploy,solver}
.prototxt and a README from the table in nets/models.py; `make check-nets` fails when the
committed files differ from what the builders make.
"""
