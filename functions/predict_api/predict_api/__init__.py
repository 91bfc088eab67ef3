"""The online prediction function: FastAPI behind API Gateway, through Mangum."""
