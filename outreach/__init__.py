"""Outreach: home-service requests, eligibility, reminders and notifications."""
