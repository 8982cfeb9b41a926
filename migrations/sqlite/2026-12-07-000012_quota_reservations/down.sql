DROP TABLE quota_reservations;
