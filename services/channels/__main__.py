from services.channels.app import SPEC
from shared.service import run_service

run_service(SPEC)
