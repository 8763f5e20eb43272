"""``python -m hotline`` (``make run``): every service and the gateway on one port."""

from hotline.embedded import main

if __name__ == "__main__":
    main()
