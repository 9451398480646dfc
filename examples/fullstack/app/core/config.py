"""Settings from the environment (or a ``.env`` file), as in FastAPI's full-stack template."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    PROJECT_NAME: str = "fullstack — sqljobs example"
    API_V1_STR: str = "/api/v1"
    # sqlite:///..., postgresql+psycopg://app@db/app or mysql+pymysql://app@db/app
    DATABASE_URL: str = "sqlite:///fullstack.db"
    SECRET_KEY: str = "changethis"  # signs password reset tokens; set it in production
    FRONTEND_HOST: str = "http://localhost:5173"
    EMAILS_FROM_EMAIL: str = "info@example.com"
    EMAIL_RESET_TOKEN_EXPIRE_HOURS: int = 48
    # The in-process worker: 0 leaves the jobs to `sqljobs worker` processes.
    SQLJOBS_IN_PROCESS_WORKER: bool = True
    SQLJOBS_CONCURRENCY: int = 4


settings = Settings()
