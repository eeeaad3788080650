"""AWS side: Cromwell configuration, ECR images, the GPU AMI, S3 staging, Batch infrastructure, runs."""
