"""Suite-wide set-up."""

from mockstack.moto_patches import make_dynamodb_atomic, name_executions_like_aws

# moto's DynamoDB does not lock item operations; AWS's are atomic (see mockstack/moto_patches.py)
make_dynamodb_atomic()
# moto names an unnamed execution "None" (and dedups a second one); AWS gives it a UUID
name_executions_like_aws()
