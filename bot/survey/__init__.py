"""Satisfaction surveys (四问一查): the questionnaire as data and the understanding of answers."""
