"""Terraform provider-schema check, offline.

`terraform validate` needs the providers, which cannot be downloaded where this project is built.
Their schemas can: every prebuilt CDK provider package on PyPI (cdktf-/cdktn-provider-*) is
generated from one provider version's `terraform providers schema -json` and ships it, reshaped,
in its jsii assembly. `manifest` turns one such wheel into a compact schema (cached as JSON),
`module` reads a Terraform folder with line numbers, `check` compares the two.

    python -m tools.tfschema fetch --cache .cache/tfschema     # pip download + build (make tfschema)
    python -m tools.tfschema check terraform --cache .cache/tfschema
"""
