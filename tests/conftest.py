"""Suite-wide set-up."""

from mockstack.moto_patches import make_dynamodb_atomic

# moto's DynamoDB does not lock item operations; AWS's are atomic (see mockstack/moto_patches.py)
make_dynamodb_atomic()
