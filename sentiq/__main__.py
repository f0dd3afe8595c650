from sentiq.cli import main

main()
