"""``python -m bench`` (``make bench``): run every benchmark stage; see ``bench.run``."""

from bench.run import main

if __name__ == "__main__":
    main()
