"""The API group and version of kubenova's resources, apart from the models (which take
a tenth of a second to import: the operator's prefetch addresses resources before)."""

GROUP = "kubenova.io"
VERSION = "v1alpha1"
